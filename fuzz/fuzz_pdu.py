"""Fuzz harness: tests/fuzz/targets.py pdu_target (see fuzz/harness.py for the options)."""

from harness import main

if __name__ == "__main__":
    main("pdu")
