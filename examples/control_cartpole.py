"""Control: the controller's code is the parameter; the score is CartPole's episode return.

    python examples/control_cartpole.py [local | gpt-4o-mini]      (needs backfeed[bench])
"""

import gymnasium as gym
from _model import model_from_args

import backfeed as bf

llm, args = model_from_args(__doc__)
MAX_STEPS = 200


class Controller(bf.Module):
    @bf.op(trainable=True)
    def act(self, observation: list[float]) -> int:
        """Return 0 (push left) or 1 (push right).
        observation = [cart position, cart velocity, pole angle, pole angular velocity]."""
        return 0

    def forward(self, seed):
        env = gym.make("CartPole-v1", max_episode_steps=MAX_STEPS)
        obs, _ = env.reset(seed=seed)
        total, action = 0.0, None
        while True:
            action = self.act([float(v) for v in obs])  # traced; an exception is feedback
            obs, reward, terminated, truncated, _ = env.step(int(action.value))
            total += reward
            if terminated or truncated:
                return episode(action, total, [round(float(v), 3) for v in obs])


@bf.op
def episode(last_action, total, final_observation):
    """The return of the episode and where it ended."""
    return {"return": total, "final_observation": final_observation}


def metric(example, output):
    r = output  # the trainer passes the output's plain value
    return bf.Feedback(score=r["return"] / MAX_STEPS,
                       text=f"return {r['return']:g} of {MAX_STEPS}; ended at {r['final_observation']}")


program = Controller()
episodes = [(seed, None) for seed in range(6)]
bf.train(program, episodes[:3], valset=episodes[3:], metric=metric,
         optimizer=bf.optim.Prime(program.parameters(), llm=llm),
         budget=bf.Budget(llm_calls=args.calls))
print(program.act.code.value)
