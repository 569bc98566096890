"""A prefix trie over the valid identifier sequences: which tokens may follow a prefix, and which
documents lie below it. Every sequence ends with the EOS token, whose child names the document, so a
prefix of one id that is itself another id stays unambiguous."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Node:
    children: dict[int, Node] = field(default_factory=dict)
    docs: list[int] = field(default_factory=list)  # every document whose id passes through here
    doc: int | None = None  # set on the node after EOS: the document this id names


class Trie:
    def __init__(self, sequences: Sequence[Sequence[int]], eos: int):
        self.eos = eos
        self.root = Node()
        for doc, seq in enumerate(sequences):
            if eos in seq:
                raise ValueError(f"id {list(seq)} of document {doc} contains the EOS token {eos}")
            node = self.root
            node.docs.append(doc)
            for token in (*seq, eos):
                node = node.children.setdefault(token, Node())
                node.docs.append(doc)
            if node.doc is not None:
                raise ValueError(f"documents {node.doc} and {doc} have the same id {list(seq)}")
            node.doc = doc
        self.size = len(sequences)
        self.depth = max((len(s) for s in sequences), default=0) + 1

    def node(self, prefix: Sequence[int]) -> Node | None:
        node: Node | None = self.root
        for token in prefix:
            node = node.children.get(token) if node else None
        return node

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Tokens that continue ``prefix`` towards some valid id (empty for an invalid prefix)."""
        node = self.node(prefix)
        return sorted(node.children) if node else []

    def document(self, sequence: Sequence[int]) -> int | None:
        """The document a complete sequence (EOS included) names, or None."""
        node = self.node(sequence)
        return node.doc if node else None
