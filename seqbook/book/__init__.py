"""The book's own machinery: the section registry (``sections``), claims checked where
the text makes them (``claims``), plotting in the book's style and measuring time and
memory."""
