"""Data: synthetic generation, readers of real data sets, transforms and LightningDataModules."""
