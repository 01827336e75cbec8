"""Where the target's machine code can run: natively, under user-mode emulation (qemu), or not here."""
