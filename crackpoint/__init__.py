"""The layer above the solver (`dlem`) and the model (`model`), which import nothing from
each other (the data contract is their only interface):

- `crackpoint.stopping`, standard library only, is what both command lines share;
- `crackpoint.peeling` and its command line (`python -m crackpoint peel`) need both the solver
  and a trained model, so they live here, as the workflow does (`workflow -> {dlem, model}`),
  with what they run of the solver: `crackpoint.fitting` (straight cracks' records, the
  end-point fit) and `crackpoint.completion` (the solver check); neither package imports
  them."""
