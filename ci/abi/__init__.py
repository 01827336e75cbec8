"""ABI check of a layer tree: will every binary in it load on the Lambda target?

elf.py reads ELF facts, foreign.py recognises Windows/macOS binaries, check.py applies the
target's rules to a tree and names each file's distribution with ci.site.owners.
"""
