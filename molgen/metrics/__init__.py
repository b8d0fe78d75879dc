"""Measuring samples: distances between point sets (`stats`), FID (`fid`), EDM's molecule
metrics (`molecules`) and the property regressor that judges conditional samples
(`regressor`)."""
