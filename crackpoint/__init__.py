"""What both command lines, `python -m dlem` and `python -m model`, share and neither owns:
standard library only, so that neither package imports the other (docs: the data contract
is their only interface)."""
