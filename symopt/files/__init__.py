"""Files: formatting, hashed headers, atomic writes and the up-to-date check of generated output."""
