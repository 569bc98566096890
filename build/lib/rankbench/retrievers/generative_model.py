"""The generative retriever's network: a pretrained encoder reads the text, a small fresh decoder
spells a document identifier token by token while attending to the encoder's states.

No pretrained seq2seq model (T5, BART) ships here, so the encoder is all-MiniLM-L6-v2 (via
transformers AutoModel) and the decoder is a 2-layer ``torch.nn.TransformerDecoder`` of the same
width (384), whose vocabulary is the identifier alphabet plus EOS (output) and BOS (input only).
Its output layer is tied to its token embeddings. A saved model is a folder: ``weights.safetensors``
(encoder and decoder), ``encoder/`` (the encoder's config and tokenizer, so the base model is not
needed to load it), ``generative.json`` (architecture) and ``docids.json`` (the id map, with its
digest and the corpus fingerprint it was built on).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from rankbench.harness.cache import write_text_atomic
from rankbench.harness.errors import DataError
from rankbench.retrievers.constrained import beam_search
from rankbench.retrievers.docids import DocIdMap, token_sequences
from rankbench.retrievers.trie import Trie

CONFIG_FILE, WEIGHTS_FILE, DOCIDS_FILE, ENCODER_DIR = "generative.json", "weights.safetensors", "docids.json", "encoder"


@dataclass
class GenerativeConfig:
    id_tokens: int  # identifier alphabet; EOS = id_tokens, BOS = id_tokens + 1
    max_id_length: int  # longest id in tokens, EOS included
    position_aware: bool
    base_model: str
    max_length: int = 64  # input text tokens
    decoder_layers: int = 2
    decoder_heads: int = 6
    decoder_ff: int = 1536
    dropout: float = 0.1

    @property
    def eos(self) -> int:
        return self.id_tokens

    @property
    def bos(self) -> int:
        return self.id_tokens + 1


class GenerativeRetriever(nn.Module):
    """Encoder (pretrained) + decoder (fresh) + the id map they were trained for."""

    def __init__(self, config: GenerativeConfig, encoder: nn.Module, tokenizer, docids: DocIdMap):
        super().__init__()
        self.config, self.encoder, self.tokenizer, self.docids = config, encoder, tokenizer, docids
        width = encoder.config.hidden_size
        self.embed = nn.Embedding(config.id_tokens + 2, width)
        self.position = nn.Embedding(config.max_id_length + 1, width)
        layer = nn.TransformerDecoderLayer(
            width, config.decoder_heads, config.decoder_ff, config.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, config.decoder_layers, norm=nn.LayerNorm(width))
        for table in (self.embed, self.position):  # BERT's init: N(0, 1) would make the tied logits ~N(0, width)
            nn.init.normal_(table.weight, std=0.02)
        self.sequences, _ = token_sequences(docids.ids, config.position_aware)
        self.trie = Trie(self.sequences, config.eos)

    @classmethod
    def fresh(
        cls, base: Path, base_name: str, docids: DocIdMap, position_aware: bool, pretrained: bool = True, **arch
    ) -> GenerativeRetriever:
        """A new model: the encoder at ``base`` (its weights, or only its shape and tokenizer when not
        ``pretrained``) and a randomly initialised decoder."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        sequences, keys = token_sequences(docids.ids, position_aware)
        longest = max(len(s) for s in sequences) + 1
        config = GenerativeConfig(len(keys), longest, position_aware, base_name, **arch)
        if pretrained:
            encoder = AutoModel.from_pretrained(base, attention_probs_dropout_prob=0.0)
        else:
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(base, attention_probs_dropout_prob=0.0))
        return cls(config, encoder, AutoTokenizer.from_pretrained(base), docids)

    @classmethod
    def load(cls, folder: Path) -> GenerativeRetriever:
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = GenerativeConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder / ENCODER_DIR))
        try:
            docids = DocIdMap.from_json((folder / DOCIDS_FILE).read_text())
        except ValueError as e:
            raise DataError(f"{folder / DOCIDS_FILE}: {e}") from None
        model = cls(config, encoder, AutoTokenizer.from_pretrained(folder / ENCODER_DIR), docids)
        model.load_state_dict(load_file(folder / WEIGHTS_FILE))
        return model.eval()

    def save(self, folder: Path) -> None:
        """Write each file beside its final name, then rename it in (a kill leaves the old file)."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(folder / ENCODER_DIR)
        self.tokenizer.save_pretrained(folder / ENCODER_DIR)
        tmp = folder / f".{WEIGHTS_FILE}.tmp-{os.getpid()}"
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, tmp)
        tmp.chmod(0o644)  # safetensors creates it owner-only
        os.replace(tmp, folder / WEIGHTS_FILE)
        write_text_atomic(folder / DOCIDS_FILE, self.docids.to_json())
        write_text_atomic(folder / CONFIG_FILE, json.dumps(asdict(self.config), indent=1))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
        )

    def encode(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states and the padding mask the decoder's cross-attention must ignore."""
        return self.encoder(**inputs).last_hidden_state, inputs["attention_mask"] == 0

    def decode(self, memory: torch.Tensor, memory_pad: torch.Tensor, prefixes: torch.Tensor) -> torch.Tensor:
        """Logits over the id alphabet + EOS for the token after each position of ``prefixes`` (BOS first)."""
        length = prefixes.shape[1]
        x = self.embed(prefixes) + self.position(torch.arange(length, device=prefixes.device))
        causal = nn.Transformer.generate_square_subsequent_mask(length, dtype=x.dtype, device=x.device)
        hidden = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=memory_pad)
        return hidden @ self.embed.weight[: self.config.id_tokens + 1].T

    def loss(self, texts: list[str], targets: list[int]) -> torch.Tensor:
        """Teacher-forced cross-entropy of each text's target document id (EOS included)."""
        memory, pad = self.encode(self.tokenize(texts))
        seqs = [self.sequences[t] + [self.config.eos] for t in targets]
        width = max(map(len, seqs))
        inputs = torch.full((len(seqs), width), self.config.eos, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for row, seq in enumerate(seqs):
            inputs[row, : len(seq)] = torch.tensor([self.config.bos, *seq[:-1]])
            labels[row, : len(seq)] = torch.tensor(seq)
        logits = self.decode(memory, pad, inputs)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))

    def scorer(self, memory: torch.Tensor, pad: torch.Tensor):
        """A beam-search scorer for one text: its encoder states fixed, prefixes in, next-token logits out."""

        def score(prefixes: list[list[int]]):
            batch = torch.tensor([[self.config.bos, *p] for p in prefixes], dtype=torch.long)
            n = len(prefixes)
            logits = self.decode(memory.expand(n, -1, -1), pad.expand(n, -1), batch)[:, -1]
            return logits.float().numpy()

        return score

    @torch.inference_mode()
    def search(self, texts: list[str], k: int, beam_size: int, batch_size: int = 32) -> list[list[tuple[int, float]]]:
        """The top ``k`` documents (index into the id map, score) for each text, by constrained beam search."""
        was_training = self.training
        self.eval()
        results = []
        for start in range(0, len(texts), batch_size):
            memory, pad = self.encode(self.tokenize(texts[start : start + batch_size]))
            for row in range(memory.shape[0]):
                scorer = self.scorer(memory[row : row + 1], pad[row : row + 1])
                results.append(beam_search(scorer, self.trie, beam_size, k))
        self.train(was_training)
        return results
