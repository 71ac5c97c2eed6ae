"""Class names: the 80 COCO classes (what YOLOv8/YOLO11, YOLOX, RT-DETR, D-FINE, DEIM and RF-DETR
models trained on COCO answer, in the order of their class ids), or a file of the operator's."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Union

COCO = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
    "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl "
    "banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave "
    "oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
COCO_NAMES: List[str] = [n.replace("_", " ") for n in COCO.split()]


def load_labels(source: Union[str, List[str], None], count: Optional[int]) -> Dict[int, str]:
    """``source``: a list of names, ``coco``, a ``.yaml`` file with ``names`` (list or mapping)
    or a text file with one name a line; None: COCO for 80 classes, else the class ids."""
    from detectors.base import DetectorError

    if source is None:
        if count == 80:
            return dict(enumerate(COCO_NAMES))
        return {i: str(i) for i in range(count or 0)}
    if isinstance(source, list):
        return {i: str(n) for i, n in enumerate(source)}
    if source == "coco":
        return dict(enumerate(COCO_NAMES))
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DetectorError("labels file {}: {}".format(source, exc), "labels") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            names = (yaml.safe_load(text) or {}).get("names")
        except (yaml.YAMLError, AttributeError) as exc:
            raise DetectorError("labels file {}: {}".format(source, exc), "labels") from None
        if isinstance(names, list):
            return {i: str(n) for i, n in enumerate(names)}
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items()}
        raise DetectorError("labels file {}: no names list".format(source), "labels")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return dict(enumerate(lines))
