"""A worked example of a drop-in environment: a 1-D point mass pushed to the origin.

Every command loads this file by itself (it lies in envs/), so after dropping it in:

    esbench envs                                        # lists point/PointMass-v0, "from envs/point_mass.py"
    esbench run --env point/PointMass-v0 --algo ars --env-steps 200000

State: position x in [-1, 1] (drawn at reset) and velocity v. Action: a force a in [-1, 1].
Dynamics (dt 0.1): v += 0.1 a, x += 0.1 v, x clipped to [-2, 2]. Reward: -(x^2 + 0.1 a^2) per
step, so a policy that brings the mass to rest at 0 quickly scores best. Episodes last 100 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np

from esbench.envs import Box, EnvSpec, build_env, register

ENV_ID = "point/PointMass-v0"
DT = 0.1
FRAME = 64  # rendered frames are FRAME x FRAME pixels


def make_point_mass():
    spec = EnvSpec(id=ENV_ID, suite="custom", obs_dim=2, action=Box.make(-1.0, 1.0, 1), max_episode_steps=100)

    def raw_reset(key):
        x = jax.random.uniform(key, (), minval=-1.0, maxval=1.0)
        state = jnp.stack([x, 0.0])
        return state, state  # the observation is the state itself: (x, v)

    def raw_step(key, state, action):
        force = jnp.clip(action[0], -1.0, 1.0)
        v = state[1] + DT * force
        x = jnp.clip(state[0] + DT * v, -2.0, 2.0)
        new = jnp.stack([x, v])
        reward = -(x**2 + 0.1 * force**2)
        return new, new, reward, jnp.bool_(False)  # never ends early: the time limit ends each episode

    def render(state):
        frame = np.full((FRAME, FRAME, 3), 255, np.uint8)
        frame[FRAME // 2 - 1 : FRAME // 2 + 1, :] = 200  # the track
        frame[:, FRAME // 2] = (0, 160, 0)  # the goal, x = 0
        col = int(np.clip((float(state[0]) + 2.0) / 4.0 * (FRAME - 1), 0, FRAME - 1))
        frame[FRAME // 2 - 4 : FRAME // 2 + 4, max(col - 3, 0) : col + 4] = (200, 30, 30)
        return frame

    return build_env(spec, raw_reset, raw_step, render)


register(ENV_ID, make_point_mass)
