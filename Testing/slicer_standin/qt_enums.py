"""Qt's enums as PythonQt exposes them (``qt.Qt.AlignLeft``, ``qt.QAbstractItemView.SelectRows``): ints that
combine with ``|`` like Qt's flags; values as in Qt 5 and 6."""

from __future__ import annotations

class _Enum(int):
    """A Qt enum value: an int that also combines with | (flags)."""

    def __or__(self, other):
        return _Enum(int(self) | int(other))

    __ror__ = __or__


class Qt:
    _qt_name = "Qt"
    NoTextInteraction, TextSelectableByMouse, TextSelectableByKeyboard = _Enum(0), _Enum(1), _Enum(2)
    LinksAccessibleByMouse, LinksAccessibleByKeyboard, TextEditable = _Enum(4), _Enum(8), _Enum(16)
    TextBrowserInteraction = _Enum(1 | 4 | 8)
    DisplayRole, DecorationRole, EditRole, ToolTipRole, StatusTipRole = (_Enum(v) for v in (0, 1, 2, 3, 4))
    UserRole = _Enum(256)
    ArrowCursor, WaitCursor, BusyCursor = _Enum(0), _Enum(3), _Enum(16)
    Unchecked, PartiallyChecked, Checked = _Enum(0), _Enum(1), _Enum(2)
    NoItemFlags, ItemIsSelectable, ItemIsEditable = _Enum(0), _Enum(1), _Enum(2)
    ItemIsDragEnabled, ItemIsDropEnabled, ItemIsUserCheckable, ItemIsEnabled = (_Enum(v) for v in (4, 8, 16, 32))
    AlignLeft, AlignRight, AlignHCenter, AlignJustify = (_Enum(v) for v in (1, 2, 4, 8))
    AlignTop, AlignBottom, AlignVCenter = _Enum(32), _Enum(64), _Enum(128)
    AlignCenter = _Enum(4 | 128)
    Horizontal, Vertical = _Enum(1), _Enum(2)
    PlainText, RichText, AutoText = _Enum(0), _Enum(1), _Enum(2)
    AscendingOrder, DescendingOrder = _Enum(0), _Enum(1)


class QAbstractItemView:
    _qt_name = "QAbstractItemView"
    NoSelection, SingleSelection, MultiSelection, ExtendedSelection, ContiguousSelection = (
        _Enum(v) for v in range(5))
    SelectItems, SelectRows, SelectColumns = _Enum(0), _Enum(1), _Enum(2)
    NoEditTriggers, CurrentChanged, DoubleClicked, SelectedClicked = _Enum(0), _Enum(1), _Enum(2), _Enum(4)
    EditKeyPressed, AnyKeyPressed, AllEditTriggers = _Enum(8), _Enum(16), _Enum(31)
