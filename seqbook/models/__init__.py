"""Reference models: what the sections build, as the book writes them (attention,
recurrent and gated cells, convolutions, Transformer blocks and models, LoRA, ...).
A module that holds one section's reference code is named after that section
(seqbook.book.sections); building blocks shared by several keep their topic's name
(``attention``, ``transformer``)."""
