"""Training: the book's training loop (``loop``), fine-tuning a pretrained encoder
(``fine_tuning``) and the depth experiments of the layer-norm section."""
