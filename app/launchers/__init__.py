"""How ``python -m app.launch`` starts the workers of one multi-worker job: local processes
(`local`), Ray workers (`ray`) or Slurm tasks (`slurm`); `output` relays what they print."""
