"""Helpers the tests share: where things are (`paths`), running commands (`commands`), waiting
(`waiting`), talking to a server (`http`) and the trained models built once per run (`builds`)."""
