"""HistGen MONAI bundle package.

MONAI bundle convention: configs reference this package as ``scripts.<module>``; MONAI Label only
reloads custom code that lives in a package named ``scripts``.
"""
