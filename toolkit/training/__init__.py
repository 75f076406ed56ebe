"""Training students on datasets by name: TRL SFT / DPO recipes, LoRA, provenance.

    recipe = load_recipe("recipes/cot/smollm2-135m-lora.yaml", ["max_steps=10"], output_dir="out/s")
    result = train(recipe, merge=True)   # OUT: adapter, hubtool_train.json, README.md; OUT/merged/

`load_recipe` validates everything it can (keys, types, the trainer) before any model loads;
`train` resolves the dataset name and checks its columns before it loads the student.
"""

from toolkit.training.recipe import Recipe, load_recipe, parse_overrides, trainer_for
from toolkit.training.run import TrainResult, train

__all__ = ["Recipe", "TrainResult", "load_recipe", "parse_overrides", "train", "trainer_for"]
