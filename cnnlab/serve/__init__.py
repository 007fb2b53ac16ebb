"""The explorer: a local web page to explore any cnnlab model (top-5, saliency, Grad-CAM, feature maps,
attacks), served by Flask on loopback.

    from cnnlab.serve import start_server
    srv = start_server(cnnlab.create_model("efficientnet_lite0", pretrained=True))
    print(srv.url); ...; srv.stop()
"""
from .app import create_app, is_loopback
from .engine import Explorer
from .server import RunningServer, serve, start_server

__all__ = ["Explorer", "RunningServer", "create_app", "is_loopback", "serve", "start_server"]
