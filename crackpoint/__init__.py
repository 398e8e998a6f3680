"""The layer above the solver (`dlem`) and the model (`model`), which import nothing from
each other (the data contract is their only interface):

- `crackpoint.stopping`, standard library only, is what both command lines share;
- `crackpoint.peeling` and its command line (`python -m crackpoint peel`) need both the solver
  and a trained model, so they live here, as the workflow does (`workflow -> {dlem, model}`);
  neither package imports them."""
