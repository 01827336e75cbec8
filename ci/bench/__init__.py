"""Side-by-side measurements of this build against a naive `pip install --target` layer."""
