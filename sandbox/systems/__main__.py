"""``python -m sandbox.systems --seed 7 --auto-step 30``: serve both sandboxes until Ctrl-C."""

from __future__ import annotations

import argparse
import time

from sandbox.systems import start_sandboxes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sandbox planning system and TMS on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--auto-step", type=float, default=None, metavar="SECONDS",
                        help="inject the next drift every SECONDS (default: only on "
                             "POST /scenario/step)")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--no-from-check", action="store_true",
                        help="apply actions without checking their from_* values (as systems "
                             "that trust the caller do)")
    args = parser.parse_args(argv)
    planning, tms = start_sandboxes(seed=args.seed, auto_step_seconds=args.auto_step,
                                    n_skus=args.skus, checks_from=not args.no_from_check)
    print(f"planning  {planning.url}  (GET /demand /inventory /capacity /receipts)")
    print(f"tms       {tms.url}  (GET /shipments /capacity /lanes)")
    print("both: POST /actions, GET /received, POST /scenario/step, POST /scenario/faults")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        planning.stop()
        tms.stop()


if __name__ == "__main__":
    main()
