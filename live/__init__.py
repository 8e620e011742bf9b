"""live: track a hand in 3D from a plain RGB camera (``handrgbd live``)."""
