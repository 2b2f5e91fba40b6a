"""CTR model zoo built on one shared feature embedding layer."""
