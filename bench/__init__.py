"""The aiomove benchmark (`make bench`); see bench/README.md."""
