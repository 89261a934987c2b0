"""``python -m dg_envs.zoo train --algo dgppo --env InvertedPendulum-v5``: see :mod:`dg_envs.zoo`."""

from dg_envs.zoo import main

if __name__ == "__main__":
    main()
