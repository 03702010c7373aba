"""Print streamplane's package-level import graph as a Mermaid diagram.

    .venv/bin/python scripts/import_graph.py > docs/import-graph.mmd

Each node is a package (or a top-level module) of ``streamplane`` at the depth the
architecture is read at: the plane's subpackages, the applications, the tools and the
Dagster face. An edge A --> B means some module of A imports some module of B. The graph
comes from grimp, the library import-linter builds its contracts on, so it is the graph
the contracts in pyproject.toml check.
"""

from __future__ import annotations

import sys

import grimp

# Where the graph stops descending: these are read as one node each.
NODES = (
    "streamplane.platform.kafka",
    "streamplane.platform.supervisor",
    "streamplane.platform.worker",
    "streamplane.platform.features",
    "streamplane.platform.mesh",
    "streamplane.platform",
    "streamplane.rl",
    "streamplane.dev",
    "streamplane.testing",
    "streamplane.config",
    "streamplane.assets",
    "streamplane.sensors",
    "streamplane.runner",
    "streamplane.mesh",
)
# Generated protobuf stubs: every layer may use them, and they would only add noise.
HIDDEN = (
    "streamplane.runner",
    "streamplane.mesh",
    "streamplane.exceptions",
    "streamplane.logs",
)


def node_of(module: str) -> str:
    """The node a module is drawn in."""
    for node in NODES:
        if module == node or module.startswith(node + "."):
            return node
    return ".".join(module.split(".")[:2])


def edges(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """Package-level edges, without self-loops and without the hidden nodes."""
    found: set[tuple[str, str]] = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = node_of(importer), node_of(imported)
            if a != b and b.startswith("streamplane.") and not b.startswith(HIDDEN):
                found.add((a, b))
    return found


def _node(name: str) -> str:
    short = name.removeprefix("streamplane.")
    return f'{short.replace(".", "_")}["{short}"]'


def main() -> None:
    """Write the diagram to standard output."""
    graph = grimp.build_graph("streamplane")
    lines = ["flowchart TD"]
    for a, b in sorted(edges(graph)):
        lines.append(f"    {_node(a)} --> {_node(b)}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
