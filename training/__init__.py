"""Training of the forgetting-curve model: an HLR simulator, a CSV loader, a trainer and its quality gate."""
