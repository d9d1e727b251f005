"""What every command and every part of the app shares: errors, default folders, the command-line
conventions (one-line errors, a final JSON line) and child processes."""
