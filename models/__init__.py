"""The models trigger-edge ships (installed as the package ``edge.models``); see README.md here."""
