"""Control: a controller function (its code is the parameter) for gymnasium classic control.

CartPole: score = episode return / step limit (1 = balanced to the end).
MountainCar: score = (return + 200) / 100, clipped to [0, 1] (1 = goal within 100 steps).
The feedback gives the return, why the episode ended and the last observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import backfeed as bf

from . import Example, Task, plain, register


@dataclass(frozen=True)
class Env:
    """What the controller and the metric need to know about one environment."""

    gym_id: str
    actions: tuple[int, ...]
    observation: str
    max_steps: int


CARTPOLE_OBS = "[cart position, cart velocity, pole angle (rad), pole angular velocity]"
MOUNTAINCAR_OBS = "[car position (goal at 0.5), car velocity]"


class Controller(bf.Module):
    """Runs one episode, asking `act` for every action, then reports the result."""

    def __init__(self, env: Env) -> None:
        self.env = env

    @bf.op(trainable=True)
    def act(self, observation: list[float]) -> int:
        """Return the action for this observation."""
        return 1 if observation[0] < 0 else 0

    def forward(self, episode_seed: Any) -> Any:
        import gymnasium as gym

        env = gym.make(self.env.gym_id, max_episode_steps=self.env.max_steps)
        observation, _ = env.reset(seed=int(plain(episode_seed)))
        total, steps, reason, last, error = 0.0, 0, "step limit reached", None, None
        trajectory: list[list[float]] = []
        try:
            while True:
                obs = [round(float(v), 4) for v in observation]
                trajectory.append(obs)
                try:
                    last = self.act(obs)
                except bf.ExecutionError as exc:
                    last, error, reason = exc.node, str(exc.error), "the controller raised"
                    break
                action = last.value
                if isinstance(action, bool) or action not in self.env.actions:
                    reason = f"invalid action {action!r}; expected one of {list(self.env.actions)}"
                    break
                observation, reward, terminated, truncated, _ = env.step(int(action))
                total += float(reward)
                steps += 1
                if terminated:
                    reason = "terminated (pole fell or cart left the track)" \
                        if self.env.gym_id.startswith("CartPole") else "reached the goal"
                    break
                if truncated:
                    break
        finally:
            env.close()
        return episode_report(last, self.env.gym_id, total, steps, reason, error,
                              trajectory[-3:], max(o[0] for o in trajectory))


@bf.op
def episode_report(
    last_action: Any, env: str, episode_return: float, steps: int, ended: str,
    error: str | None, last_observations: list[list[float]], max_position: float,
) -> dict[str, Any]:
    """Summary of an episode: return, steps, why it ended, the last observations."""
    return {"env": env, "return": episode_return, "steps": steps, "ended": ended,
            "error": error, "last_observations": last_observations,
            "max_position": max_position}


def make_metric(env: Env) -> Any:
    def metric(example: Example, output: Any) -> bf.Feedback:
        report = plain(output)
        if not isinstance(report, dict) or "return" not in report:
            return bf.Feedback(score=0.0, text=f"not an episode report: {report!r}")
        ret = report["return"]
        if env.gym_id.startswith("CartPole"):
            score = ret / env.max_steps
        else:
            score = min(1.0, max(0.0, (ret + env.max_steps) / 100.0))
        best = str(env.max_steps) if env.gym_id.startswith("CartPole") else "about -90"
        text = (f"episode return {ret:g} in {report['steps']} steps (best possible {best}); "
                f"ended: {report['ended']}")
        if report["error"]:
            text += f": {report['error']}"
        if score < 1:
            text += (f". Observations are {env.observation}; the last ones were "
                     f"{report['last_observations']}")
            if not env.gym_id.startswith("CartPole"):
                text += f"; the highest position reached was {report['max_position']:.3f}"
        return bf.Feedback(score=score, text=text, details={"return": ret})

    return metric


ENVS = {
    "cartpole": ("CartPole-v1", (0, 1), CARTPOLE_OBS),
    "mountaincar": ("MountainCar-v0", (0, 1, 2), MOUNTAINCAR_OBS),
}


def _control_task(key: str) -> Any:
    gym_id, actions, observation = ENVS[key]

    def factory(seed: int, size: str) -> Task:
        if key == "cartpole":
            max_steps = 200 if size == "quick" else 500
        else:
            max_steps = 200
        env = Env(gym_id, actions, observation, max_steps)
        n = (2, 2, 4) if size == "quick" else (3, 3, 10)
        episodes = [(100 * seed + i, None) for i in range(sum(n))]
        actions_text = {"cartpole": "0 pushes left, 1 pushes right",
                        "mountaincar": "0 accelerates left, 1 does nothing, 2 accelerates right"}
        return Task(
            name=f"control/{key}",
            family="control",
            seed=seed,
            size=size,
            description=f"Write act(observation) for {gym_id}: observation is {observation}; "
            f"actions: {actions_text[key]}.",
            build=lambda llm=None: Controller(env),
            metric=make_metric(env),
            trainset=episodes[: n[0]],
            valset=episodes[n[0]: n[0] + n[1]],
            testset=episodes[n[0] + n[1]:],
            info={"max_steps": max_steps},
        )

    return factory


for _key in ENVS:
    register(f"control/{_key}")(_control_task(_key))
