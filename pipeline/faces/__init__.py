"""Face detection, recognition, swapping, enhancing and anonymising on frames."""
