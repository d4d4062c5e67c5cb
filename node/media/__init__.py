"""Media layer: WebRTC peers, the room mixer, and packet fan-out.

It deals in string ids and Opus packets only; it knows nothing of rooms or accounts.
aiortc and PyAV are imported here and nowhere else in the node.
"""
