"""Use cases every surface shares: written once here, mapped by each surface."""
