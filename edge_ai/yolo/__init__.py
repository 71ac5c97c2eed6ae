"""The YOLO worker: ultralytics detection on camera frames, one summary a second to the VMS."""
