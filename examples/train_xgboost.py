"""Your own training script: XGBoost on the features `edgectl features` wrote, saved as model.json.

Plain xgboost and numpy, nothing of edgectl: the point is that you train where and how you like,
on exactly the inputs the board will compute.

    python examples/train_xgboost.py features.csv model.json
"""

import csv
import sys

import numpy as np
import xgboost


def main(features_csv, model_json):
    with open(features_csv, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    first = header.index("label") + 1  # machine, ts, label, then the model's inputs
    y = np.array([int(r[first - 1]) for r in rows[1:]])
    X = np.array([[float(v) for v in r[first:]] for r in rows[1:]])
    model = xgboost.XGBClassifier(n_estimators=60, max_depth=4, objective="multi:softprob", random_state=0)
    model.fit(X, y)
    model.get_booster().save_model(model_json)
    print(f"trained on {len(y)} windows, {X.shape[1]} inputs, {len(set(y))} classes: {model_json}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
