"""The torch-free policy: its actions equal stable-baselines3's ``predict(deterministic=True)`` on
every day of a full backtest (several seeds, long-only and long/short, whole and fractional
shares), its logits stay within 1e-6 of SB3's, and the arrays round-trip through ``policy.npz``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from finrl.agents.numpy_policy import NumpyPolicy, PolicyError
from finrl.agents.training import train
from finrl.meta.env.market_arrays import MarketArrays
from finrl.meta.env.rollout import run_policy, sb3_policy
from unit_tests.agents.test_training import TINY_ENV, TINY_PPO, generated_data, tiny_job
from unit_tests.conftest import execution_config

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")

ACTION_SETTINGS = {
    "long_only": execution_config(),
    "long_short": execution_config(allow_short=True),
    "fractional_next_close": execution_config(fractional_shares=True, fill_at="next_close"),
}


def sb3_logits(model: object, observations: np.ndarray) -> np.ndarray:
    policy = model.policy  # type: ignore[attr-defined]  # an SB3 model
    with torch.no_grad():
        latent = policy.mlp_extractor.forward_actor(torch.as_tensor(observations, dtype=torch.float32))
        return policy.action_net(latent).numpy()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("setting", sorted(ACTION_SETTINGS))
def test_numpy_actions_equal_sb3_on_every_backtest_day(tmp_path: Path, seed: int, setting: str) -> None:
    env = replace(TINY_ENV, action_space="discrete3", reward="log_return", execution=ACTION_SETTINGS[setting])
    ppo = replace(TINY_PPO, learning_rate=3e-3)  # a lively policy: its actions change from day to day
    bundle = train(tiny_job(tmp_path, f"s{seed}", seed=seed, env=env, ppo=ppo, eval_freq=0, checkpoint_freq=0)).bundle
    _, features, _, _ = generated_data()
    market = MarketArrays.from_features(features, bundle.normalizer)  # every day of the data
    model, policy = bundle.load_model(), bundle.load_policy()

    seen: list[np.ndarray] = []
    sb3_act = sb3_policy(model)

    def recording(obs: np.ndarray) -> int:
        seen.append(obs.copy())
        return sb3_act(obs)

    expected = run_policy(market, bundle.env_config, recording).frame
    actual = run_policy(market, bundle.env_config, policy).frame
    assert np.array_equal(expected["action"].to_numpy(), actual["action"].to_numpy(), equal_nan=True)
    assert np.array_equal(expected["nav"].to_numpy(), actual["nav"].to_numpy())
    observations = np.stack(seen)
    np.testing.assert_allclose(policy.logits(observations), sb3_logits(model, observations), rtol=0, atol=1e-6)
    assert len(observations) == len(market) - 1
    assert set(expected["action"].dropna()) == {0, 1, 2}  # every action occurs: the comparison has teeth


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("space", ["target_weight", "continuous"])
def test_weight_spaces_act_as_sb3_on_every_backtest_day(tmp_path: Path, seed: int, space: str) -> None:
    """The weight action spaces: the same decided weights (Box: within float32 rounding) and the same ledger."""
    env = replace(TINY_ENV, action_space=space, execution=execution_config(allow_short=True), rebalance_band=0.02)
    if space == "target_weight":
        env = replace(env, weight_levels=(-1.0, -0.5, 0.0, 0.5, 1.0))
    ppo = replace(TINY_PPO, learning_rate=3e-3)
    bundle = train(tiny_job(tmp_path, f"{space}{seed}", seed=seed, env=env, ppo=ppo, eval_freq=0, checkpoint_freq=0))
    _, features, _, _ = generated_data()
    market = MarketArrays.from_features(features, bundle.bundle.normalizer)
    model, policy = bundle.bundle.load_model(), bundle.bundle.load_policy()
    assert policy.distribution == ("diag_gaussian" if space == "continuous" else "categorical")
    expected = run_policy(market, bundle.bundle.env_config, sb3_policy(model)).frame
    actual = run_policy(market, bundle.bundle.env_config, policy).frame
    atol = 1e-6 if space == "continuous" else 0.0
    np.testing.assert_allclose(expected["action"].to_numpy(), actual["action"].to_numpy(), rtol=0, atol=atol)
    assert np.array_equal(expected["shares"].to_numpy(), actual["shares"].to_numpy())
    assert np.array_equal(expected["nav"].to_numpy(), actual["nav"].to_numpy())
    assert expected["action"].dropna().nunique() > 1  # the policy changes its mind: the comparison has teeth


def test_continuous_policies_match_sb3_with_clipping() -> None:
    """Box action spaces (target weights are coming): the mean, clipped to the bounds, as SB3 returns it."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "Pendulum-v1", seed=0, n_steps=64, batch_size=64, policy_kwargs={"net_arch": [16, 8]})
    model.learn(128)
    policy = NumpyPolicy.from_sb3(model)
    observations = np.random.default_rng(0).normal(0, 5, (1000, 3)).astype(np.float32)
    expected, _ = model.predict(observations, deterministic=True)
    np.testing.assert_allclose(policy.act_batch(observations), expected, rtol=0, atol=1e-6)
    assert (np.abs(policy.act_batch(observations)) <= 2.0).all()  # Pendulum's torque bounds


@pytest.mark.parametrize("activation", ["ReLU", "Tanh"])
def test_activations_and_depths_round_trip_through_npz(tmp_path: Path, activation: str) -> None:
    from stable_baselines3 import PPO

    kwargs = {"net_arch": [12, 7, 5], "activation_fn": getattr(torch.nn, activation)}
    model = PPO("MlpPolicy", "CartPole-v1", seed=1, n_steps=64, batch_size=64, policy_kwargs=kwargs)
    NumpyPolicy.from_sb3(model).save(tmp_path / "policy.npz")
    policy = NumpyPolicy.load(tmp_path / "policy.npz")
    observations = np.random.default_rng(1).normal(0, 2, (2000, 4))  # float64 in: cast to float32 like SB3
    expected, _ = model.predict(observations, deterministic=True)
    assert np.array_equal(policy.act_batch(observations), expected)
    assert policy.act(observations[0]) == int(expected[0])


def test_unreadable_or_incomplete_arrays_are_policy_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(PolicyError, match="cannot read"):
        NumpyPolicy.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", format=np.array(1), n_hidden=np.array(1))
    with pytest.raises(PolicyError, match="missing array"):
        NumpyPolicy.load(tmp_path / "partial.npz")
    with pytest.raises(PolicyError, match="do not chain"):
        NumpyPolicy(((np.ones((4, 3)), np.ones(4)),), "tanh", np.ones((3, 5)), np.ones(3))
