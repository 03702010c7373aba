"""MeshData: mesh nodes, their manifest and routing, and the client that talks to them."""
