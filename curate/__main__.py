"""`python -m curate ...` (and so `torchrun --nproc-per-node N -m curate train sft ...`)."""

from curate.cli.app import main

if __name__ == "__main__":
    main()
