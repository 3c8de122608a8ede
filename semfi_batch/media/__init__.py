"""Everything that touches ffmpeg/ffprobe and image files."""
