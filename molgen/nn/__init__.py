"""Networks: shared layers (`layers`), graphs over atoms (`graphs`), the EGNN (`egnn`), the
e3nn tensor-product network (`nequip`) and the image U-Net (`unet`)."""
