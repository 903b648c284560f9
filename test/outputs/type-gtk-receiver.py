"""
A GTK 3 text view for the typing tests (run by type-x11-receivers.ts with Debian's python3-gi):
every change of its text is written, whole and in UTF-8, to the file given as the second
argument (replaced atomically, so a reader never sees half a write). The first argument is the
window title. The file appears once the text view has the keyboard focus of its window.
"""
import os
import sys

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402

title, out = sys.argv[1], sys.argv[2]
window = Gtk.Window(title=title)
window.set_default_size(600, 400)
view = Gtk.TextView()
text = view.get_buffer()


def save(*_):
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text.get_text(text.get_start_iter(), text.get_end_iter(), True))
    os.replace(tmp, out)


text.connect("changed", save)
window.add(view)
window.connect("destroy", Gtk.main_quit)
window.show_all()
view.grab_focus()
save()
Gtk.main()
