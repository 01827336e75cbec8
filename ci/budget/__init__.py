"""The size budget: what Lambda counts against its unzipped limit, where the bytes go, and what if more came."""
