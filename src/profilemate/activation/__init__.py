"""How ProfileMate gets into a Python process (start-up hook, launcher, vLLM plugin, enable())."""
