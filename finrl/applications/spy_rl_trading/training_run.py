"""Settings in, a trained model bundle out: the job behind ``spy-rl train`` and ``pipeline``."""

from __future__ import annotations

from finrl.agents.training import TrainingJob, TrainingResult, train
from finrl.applications.spy_rl_trading.settings import Settings


def run_training(settings: Settings) -> TrainingResult:
    data = settings.feature_data()
    job = TrainingJob(
        features=data.features,
        feature_spec=data.spec,
        data_info=data.market.describe(),
        split=settings.data_split(data.features),
        run_name=settings.effective_run_name(),
        models_dir=settings.trained_models_dir,
        tensorboard_dir=settings.tensorboard_log_dir,
        ppo=settings.ppo_config(),
        env=settings.env_config(),
        seed=settings.random_seed,
        total_timesteps=settings.total_timesteps,
        eval_freq=settings.eval_freq,
        checkpoint_freq=settings.checkpoint_freq,
        settings=settings.snapshot(),
    )
    return train(job)
