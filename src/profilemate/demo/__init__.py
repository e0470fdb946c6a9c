"""The built-in default job: tiny models generated locally and a short vLLM workload on them.

Used by the README's quick start (``python -m profilemate.demo``) and by the end-to-end tests.
Nothing here downloads anything: weights are random with a fixed seed, the tokenizer is trained
on a built-in corpus with the ``tokenizers`` library.
"""
