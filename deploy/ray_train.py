"""Ray Train: two workers of the project's trainer. Ray's `TensorflowTrainer` sets TF_CONFIG in each
worker before calling `train_loop_per_worker`, so the trainer picks MultiWorkerMirroredStrategy itself.

    pip install "ray[train]"          # not a project dependency
    python deploy/ray_train.py        # from the repository's root, on a Ray cluster whose nodes share /shared
"""

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.tensorflow import TensorflowTrainer


def train_loop_per_worker(config: dict) -> None:
    from ray import train as ray_train

    from app.tasks import MnistTask
    from app.training.trainer import TrainConfig, train

    summary = train(MnistTask(), TrainConfig(**config)).summary
    ray_train.report({name: value for name, value in summary["metrics"].items()})


if __name__ == "__main__":
    ray.init(runtime_env={"working_dir": "."})  # ships the repository (run from its root) to every worker
    trainer = TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config={"data_dir": "/shared/data", "runs_dir": "/shared/runs", "out": "/shared/saved_models", "batch_size": 32},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 2}),
        run_config=RunConfig(name="fromzero-mnist", storage_path="/shared/ray_results"),
    )
    print(trainer.fit().metrics)
