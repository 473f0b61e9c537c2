"""Generator evaluation on features the project trains itself (no Inception download needed).

One concept per module: ``convnet`` (the small CNN and its training loop), ``attribute_classifier``,
``feature_distance`` (FID/KID), ``precision_recall`` (precision/recall/density/coverage), ``control``
(attribute-control accuracy), ``diversity`` (different faces from different z?), ``identity`` (identity
preservation of edits), ``detector`` (can a machine tell real from generated?).
"""
