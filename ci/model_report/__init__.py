"""`python -m ci model-report`: this checkout's model against the base branch's, trained the same way."""
