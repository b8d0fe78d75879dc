"""Training tasks, each implementing molgen.train.task.Task and registered there by name:
`toy2d` (`toy`), `images` (`images`) and `qm9` (`qm9`).  The conformer task lives with its
product, in molgen.conformers.task."""
