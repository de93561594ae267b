"""Email messages: the builder, addresses and MIME serialisation.

``Message.builder()`` builds a :class:`Message` the way lettre's ``Message::builder()``
does; :class:`Mailbox` and :class:`Address` are its mailboxes; a
:class:`MessageTemplate` (``builder.template()``) makes personalised copies for bulk
mail with the attachments encoded once. See :mod:`smtpx.message._message`.
"""

from smtpx.message._message import Message, MessageBuilder, MessageTemplate
from smtpx.message.address import Address, Mailbox

__all__ = ["Address", "Mailbox", "Message", "MessageBuilder", "MessageTemplate"]
