"""Fits y = w*x + b to points by gradient descent, with the standard
library alone: a stand-in for a real training script."""

import argparse
import json


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="JSON list of [x, y] points")
    parser.add_argument("--rate", type=float, help="learning rate")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--out", help="where to write the model, as JSON")
    parser.add_argument("--evaluate", help="a model to evaluate on the data instead")
    args = parser.parse_args()

    with open(args.data) as f:
        points = json.load(f)

    if args.evaluate:
        with open(args.evaluate) as f:
            model = json.load(f)
        print("loss %.6f" % loss(model["w"], model["b"], points))
        return

    w, b = 0.0, 0.0
    n = len(points)
    for epoch in range(args.epochs):
        dw = sum(2 * (w * x + b - y) * x for x, y in points) / n
        db = sum(2 * (w * x + b - y) for x, y in points) / n
        w -= args.rate * dw
        b -= args.rate * db
        if epoch % 50 == 0:
            print("epoch %d: loss %.6f" % (epoch, loss(w, b, points)))
    final = loss(w, b, points)
    with open(args.out, "w") as f:
        json.dump({"w": w, "b": b, "rate": args.rate}, f)
    print("loss %.6f" % final)


def loss(w, b, points):
    return sum((w * x + b - y) ** 2 for x, y in points) / len(points)


if __name__ == "__main__":
    main()
