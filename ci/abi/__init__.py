"""ABI check of a layer tree: will every binary in it load on the Lambda target?

elf.py reads ELF facts, foreign.py recognises Windows/macOS binaries, owners.py maps a file
to the distribution that installed it, check.py applies the target's rules to a tree.
"""
