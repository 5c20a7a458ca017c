"""Task classes of the HistGen MONAI Label app (MONAI Label imports ``lib`` from the app folder)."""
