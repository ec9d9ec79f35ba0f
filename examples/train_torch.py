"""A small PyTorch training loop logged with sidetrack (MLflow's fluent API).

    PYTHONPATH=build/python /usr/bin/python3 examples/train_torch.py [--epochs N]

Prints the run id. The loss is logged every step as a tensor, as training code has it: no
.item(), so logging never waits for the device.
"""
import argparse
import sys

import torch

import sidetrack as mlflow


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    a = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(2048, 16)
    w_true = torch.randn(16, 1)
    y = x @ w_true + 0.1 * torch.randn(2048, 1)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    batches = list(zip(x.split(64), y.split(64)))

    mlflow.set_experiment("examples")
    with mlflow.start_run(run_name="torch-regression") as run:
        mlflow.log_params({"lr": a.lr, "epochs": a.epochs, "batch_size": 64,
                           "hidden": 32, "optimizer": "SGD"})
        mlflow.set_tag("model", "mlp")
        step = 0
        for epoch in range(a.epochs):
            total = torch.zeros(())
            for xb, yb in batches:
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                opt.step()
                mlflow.log_metric("train/loss", loss, step=step)  # a tensor: no .item()
                total += loss.detach()
                step += 1
            mlflow.log_metrics({"epoch/loss": total / len(batches), "epoch": epoch}, step=epoch)
        mlflow.log_dict({"layers": [16, 32, 1], "activation": "relu"}, "model/config.json")
        torch.save(model.state_dict(), "/tmp/sidetrack-example-model.pt")
        mlflow.log_artifact("/tmp/sidetrack-example-model.pt", artifact_path="model")
        # A new version of the registered model, @candidate pointing at it: queued with the
        # run's records, applied by the agent (and replicated once when it syncs).
        mlflow.register_model(f"runs:/{run.run_id}/model", "example-mlp", alias="candidate")
    print(run.run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
